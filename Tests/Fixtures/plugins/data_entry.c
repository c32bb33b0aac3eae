/* Exports polyhead_plugin_entry as data instead of a function: refused before dlopen. */
__attribute__((visibility("default"))) const int polyhead_plugin_entry = 1;
