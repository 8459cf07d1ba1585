"""One class per daemon: render its config, check it, start it, wait until it answers, stop it."""
