// Nothing to call: the target's one function is a constructor that runs before the tests
// (StartUp.c). This header gives the target the public folder a C target has.
