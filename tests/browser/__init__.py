"""Real-browser tests: the served app driven by Playwright through Debian's chromium."""
