# fixtures.options is also an installed entry point (pyproject): listed here too for runs without the install.
pytest_plugins = ["fixtures.options", "fixtures.order", "fixtures.xdist", "fixtures.plugin"]
