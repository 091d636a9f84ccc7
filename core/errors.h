/* Exit statuses of every flame tool (the contract in the README). */
#ifndef FLAME_ERRORS_H
#define FLAME_ERRORS_H

enum flame_exit {
    FLAME_EXIT_OK = 0,
    FLAME_EXIT_RUNTIME = 1, /* any other failure at run time */
    FLAME_EXIT_CONFIG = 2,  /* bad command line, config file, key, value or missing input file */
    FLAME_EXIT_DATA = 3,    /* unreadable or malformed data */
    FLAME_EXIT_PLUGIN = 4   /* plugin not found, not loadable, or of another ABI version */
};

#endif
