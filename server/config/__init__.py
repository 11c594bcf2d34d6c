"""What the operator configures: settings, the configuration file, agent commands, prices."""
