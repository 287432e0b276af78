# The user guide's launcher script, unchanged except for the import line.
import mpilauncher as pylauncher

pylauncher.ClassicLauncher("commandlines", debug="host+job")
