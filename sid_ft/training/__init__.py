"""Fine-tuning: options (no TensorFlow), training modes behind one interface, the graph and the loop."""
