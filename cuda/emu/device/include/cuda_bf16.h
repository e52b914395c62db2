// cuda_bf16.h of the emulated device: bf16 is ../../host/shim.h's.
#pragma once
#include "cuda_runtime.h"
