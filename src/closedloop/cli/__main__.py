from closedloop.cli import app

app()
