"""Task plumbing for the example scripts and benchmarks: GLUE and image data, metrics, predictions, command-line
parsing and the teacher-student summary. The method itself (config, trainer, distiller, heads, features, losses,
teacher cache) lives in the package's top level and does not depend on this subpackage."""
