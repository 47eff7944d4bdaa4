"""Browser tests drive the Debian Chromium binary with Playwright; they never download one."""
