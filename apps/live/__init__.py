"""The live web page of the stored cases and its JSON API."""
