"""Delta windows at cutover: which hourly windows hold source changes, and how to find them cheaply."""
