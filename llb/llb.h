#pragma once
// Everything needed to build LLB graphs: states, sources, file and exec ops, Marshal().

#include "llb/exec.h"      // IWYU pragma: export
#include "llb/fileop.h"    // IWYU pragma: export
#include "llb/marshal.h"   // IWYU pragma: export
#include "llb/platform.h"  // IWYU pragma: export
#include "llb/source.h"    // IWYU pragma: export
#include "llb/state.h"     // IWYU pragma: export
