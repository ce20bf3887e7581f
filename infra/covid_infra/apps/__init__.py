"""One ComponentResource per deployable unit of the application."""
