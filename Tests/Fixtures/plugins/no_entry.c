/* A shared library that is not a Polyhead plugin: it exports no entry function. */
__attribute__((visibility("default"))) int not_a_plugin(void) { return 42; }
