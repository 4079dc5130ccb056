using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// The transpose at the heart of A packing: six rows of 32-bit elements (floats, or quads of bytes) into
/// <c>[column][row]</c> order, eight columns at a time in AVX registers. Elements are moved as bits, never computed on.
/// </summary>
internal static unsafe class RowBlockTranspose
{
    /// <summary>Rows per block.</summary>
    public const int Rows = 6;

    /// <summary>
    /// Writes <c>packed[j * 6 + r] = row r's element j</c> for <paramref name="columns"/> columns; row r starts at
    /// <c>source + r * stride</c> (strides in elements). Needs AVX for the eight-column steps.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SixRows(uint* source, long stride, int columns, uint* packed)
    {
        float* s0 = (float*)source;
        float* output = (float*)packed;
        int j = 0;
        for (; j <= columns - 8; j += 8, output += 8 * Rows)
        {
            var r0 = Avx.LoadVector256(s0 + j);
            var r1 = Avx.LoadVector256(s0 + stride + j);
            var r2 = Avx.LoadVector256(s0 + 2 * stride + j);
            var r3 = Avx.LoadVector256(s0 + 3 * stride + j);
            var r4 = Avx.LoadVector256(s0 + 4 * stride + j);
            var r5 = Avx.LoadVector256(s0 + 5 * stride + j);
            var ab02 = Avx.UnpackLow(r0, r1);  // a0 b0 a1 b1 | a4 b4 a5 b5
            var ab13 = Avx.UnpackHigh(r0, r1); // a2 b2 a3 b3 | a6 b6 a7 b7
            var cd02 = Avx.UnpackLow(r2, r3);
            var cd13 = Avx.UnpackHigh(r2, r3);
            var ef02 = Avx.UnpackLow(r4, r5);  // e0 f0 e1 f1 | e4 f4 e5 f5
            var ef13 = Avx.UnpackHigh(r4, r5);
            var k0k4 = Avx.Shuffle(ab02, cd02, 0x44); // a0 b0 c0 d0 | a4 b4 c4 d4
            var k1k5 = Avx.Shuffle(ab02, cd02, 0xEE);
            var k2k6 = Avx.Shuffle(ab13, cd13, 0x44);
            var k3k7 = Avx.Shuffle(ab13, cd13, 0xEE);
            Sse.Store(output, k0k4.GetLower());
            Sse.StoreLow(output + 4, ef02.GetLower());
            Sse.Store(output + 6, k1k5.GetLower());
            Sse.StoreHigh(output + 10, ef02.GetLower());
            Sse.Store(output + 12, k2k6.GetLower());
            Sse.StoreLow(output + 16, ef13.GetLower());
            Sse.Store(output + 18, k3k7.GetLower());
            Sse.StoreHigh(output + 22, ef13.GetLower());
            Sse.Store(output + 24, k0k4.GetUpper());
            Sse.StoreLow(output + 28, ef02.GetUpper());
            Sse.Store(output + 30, k1k5.GetUpper());
            Sse.StoreHigh(output + 34, ef02.GetUpper());
            Sse.Store(output + 36, k2k6.GetUpper());
            Sse.StoreLow(output + 40, ef13.GetUpper());
            Sse.Store(output + 42, k3k7.GetUpper());
            Sse.StoreHigh(output + 46, ef13.GetUpper());
        }
        uint* rest = (uint*)output;
        for (; j < columns; j++, rest += Rows)
        {
            for (int r = 0; r < Rows; r++) rest[r] = source[r * stride + j];
        }
    }
}
