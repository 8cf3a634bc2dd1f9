/* A thread-local defined apart from its user (initial-exec access). */
__thread long tls_base = 1000;
