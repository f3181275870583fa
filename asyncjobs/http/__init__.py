"""The HTTP edge: ``app`` (the WSGI application and its routes), ``server``
(the threaded server of ``asyncjobs serve``) and ``openapi`` (its document).
``asyncjobs.wsgi:application`` stays the entry point WSGI servers name."""
