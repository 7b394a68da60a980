"""The dispatcher: claims due callbacks, delivers them, records outcomes, backs off."""
