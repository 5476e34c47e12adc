#!/usr/bin/env node
// The `open-do` command (see dist/cli/main.js).
import { main } from "../dist/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
