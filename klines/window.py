"""How many closes of each symbol the seed contract on ``/`` shows, and how many that needs stored."""

WINDOW = 10  # closes per payload
HISTORY = WINDOW + 1  # one more, to judge the oldest shown close against its predecessor
