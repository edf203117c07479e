"""Where runs go: the results database and the bundled reference runs."""
