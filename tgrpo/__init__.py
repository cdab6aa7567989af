"""TGRPO: the method, the LIBERO environment layer and the policies."""
