"""Tests that drive a real headless browser (Playwright + Debian's chromium)."""
