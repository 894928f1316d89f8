"""The command line: every argparse parser and the `avatarify` entry point (`main.main`)."""
