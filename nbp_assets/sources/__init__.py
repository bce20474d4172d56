"""Where the weekly run gets its inputs from: a user's own files or the warehouse."""
