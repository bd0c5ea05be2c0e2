// The operations console's shared helpers (every /ops page loads this first).
"use strict";
