"""Looking into data and models: heat maps, data checks, classifying whole folders."""
