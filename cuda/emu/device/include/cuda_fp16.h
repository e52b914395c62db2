// cuda_fp16.h of the emulated device: f16 is ../../host/shim.h's.
#pragma once
#include "cuda_runtime.h"
