"""Load generation: the Locust user, its record generator and the statistics check."""
