"""The laptime command line."""
