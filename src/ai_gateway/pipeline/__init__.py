"""The request pipeline: the ordered stages every request goes through."""
