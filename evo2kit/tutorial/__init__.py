"""The tutorial tooling: a notebook's context (context), metrics (metrics), plots (plots), machine resources
(resources), the notebook runner (runner), expected ranges (expected_ranges) and the site (docs). The library
never imports this package."""
