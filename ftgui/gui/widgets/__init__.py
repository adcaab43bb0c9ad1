"""Widgets that render one thing each: the plot, tables, the layer tree, pictures, the drop target."""
