{
  'variables': {
    # 1 when an OpenBLAS cblas.h compiles and -lopenblas links; the probe
    # always succeeds so a machine without OpenBLAS builds the built-in gemm.
    'openblas%': '<!(printf "#include <cblas.h>\\nint main(void) { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.f, 0, 1, 0, 1, 0.f, 0, 1); return 0; }\\n" | ${CC:-cc} -x c -I/usr/include/openblas -o /dev/null - -lopenblas >/dev/null 2>&1 && echo 1 || echo 0)',
  },
  'targets': [
    {
      'target_name': 'normlab_native',
      'sources': ['native/addon.cc', 'native/batchnorm.cc', 'native/conv.cc', 'native/cpu.cc', 'native/gemm.cc', 'native/gemm_direct.cc',
                  'native/infer.cc', 'native/infer_pool.cc', 'native/kernels.cc', 'native/recurrent.cc', 'native/winograd.cc'],
      'dependencies': ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      'defines': ['NODE_ADDON_API_DISABLE_DEPRECATED'],
      # No -ffast-math: NaN/Inf must propagate for divergence detection. Without
      # -fno-trapping-math GCC keeps comparisons (relu') as branches, not selects.
      # No -march: the build runs on any CPU of its architecture; the AVX2/FMA
      # and AVX-512 kernels carry their own target and are chosen at run time
      # (native/cpu.h).
      'cflags_cc': ['-std=gnu++20', '-O3', '-fno-math-errno', '-fno-trapping-math'],
      'conditions': [
        ['openblas==1', {
          'defines': ['NORMLAB_OPENBLAS'],
          'include_dirs': ['/usr/include/openblas'],
          'libraries': ['-lopenblas'],
        }],
      ],
    },
  ],
}
