// Encoder module.
