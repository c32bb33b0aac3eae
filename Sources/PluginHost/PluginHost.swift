// PluginHost module.
