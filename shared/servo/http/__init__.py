"""HTTP edge shared by the functions and the local router: parsing, errors, auth, logging."""
