//! Nothing here: the suite is the `e2e` test target.
