from edgekd.cli import run

run()
