"""Running user commands as local processes: spawning, reaping, killing, environment."""
