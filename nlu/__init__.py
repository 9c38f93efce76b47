"""Indonesian NLU: reads Rasa-format data, parses text into intent, category and entities."""
