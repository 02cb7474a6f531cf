// The one protocol of errors a person acts on.

/// An error whose `description` is a whole message for the person who ran the command: what
/// is wrong and where (the file, line, key, flag or value) and, where there is one, what to
/// do. Every library error a user can cause conforms; the executables print the description
/// as it is. Code that catches one only to say it again is noise: catch to add context (which
/// input, which step), never to re-wrap.
public protocol UserFacingError: Error, CustomStringConvertible {}
