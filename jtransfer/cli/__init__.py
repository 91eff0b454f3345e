"""The command line: `python -m jtransfer`, the launcher behind `launch/*.py`, config
overrides and the start-up checks of a study config."""
