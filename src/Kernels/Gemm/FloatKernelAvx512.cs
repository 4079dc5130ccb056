using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// 16 x 16 float micro-kernel on AVX-512: a 16-column panel step is one zmm register, so each K step is one B load and
/// sixteen multiply-adds that broadcast their A value from memory, into sixteen accumulators. Every element of C gets
/// the same fused multiply-adds in the same order as in <see cref="FloatKernelAvx2"/> (the same K block, K ascending from
/// zero, then C += tile), so the two give identical bits; only the tile, and with it A's packing, differs.
/// </summary>
internal readonly unsafe struct FloatKernelAvx512 : IGemmKernel<float, float, float>
{
    public const int TileRows = 16;

    public static int Rows => TileRows;
    public static int Columns => PackedFloatMatrix.PanelWidth;
    public static int KStep => 1;
    public static int KBlock => 256; // as the AVX2 kernel's: the K blocks decide the rounding
    public static int MBlock => 256; // 256 KB of packed A: 512 x 768 x 3072 ran a few per cent faster than with 128 (B streamed half as often)
    public static int PanelStepLength => PackedFloatMatrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => kc * TileRows;
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, float* packed) => FloatRowPacking.Pack(a, row, rows, k0, kc, packed, TileRows);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        if (columns <= 8)
        {
            // A panel's last few columns (a 7 x 7 map has 49 pixels: 3 panels and 1 column): ymm, half the work.
            MultiplyHalf(a, b, kc, c, ldc, accumulate, rows, columns);
            return;
        }
        if (rows <= 4)
        {
            // Short row blocks (M = 1 for a single vector) skip the zero rows the packing added.
            Multiply4(a, b, kc, c, ldc, accumulate, rows, columns);
            return;
        }
        if (rows <= 8)
        {
            Multiply8(a, b, kc, c, ldc, accumulate, rows, columns);
            return;
        }
        if (rows == TileRows && columns == 16)
        {
            MultiplyFull(a, b, kc, c, ldc, accumulate);
            return;
        }
        MultiplyPartial(a, b, kc, c, ldc, accumulate, rows, columns);
    }

    /// <summary>
    /// A whole 16 x 16 tile. Its own method, without the spill buffer of partial tiles: with both in one method the JIT
    /// kept the sixteen accumulators in registers only when dynamic PGO told it the K loop was hot, and without PGO
    /// (or in some processes with it) the loop ran about four times slower.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static void MultiplyFull(float* a, float* b, int kc, float* c, int ldc, bool accumulate)
    {
        // The tile's C rows (a large C is not in cache, and 16 rows are 16 separate misses) arrive during the K loop;
        // an unaligned row's 64 bytes span two lines. (About 2% on 1024 x 384 x 1536 and 512 x 768 x 3072.)
        float* line = c;
        for (int r = 0; r < TileRows; r++, line += ldc)
        {
            Sse.Prefetch0(line);
            Sse.Prefetch0(line + 15);
        }
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        Vector512<float> c8 = default, c9 = default, c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default;
        for (int k = 0; k < kc; k++)
        {
            var bk = Avx512F.LoadVector512(b);
            c0 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[0]), bk, c0);
            c1 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[1]), bk, c1);
            c2 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[2]), bk, c2);
            c3 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[3]), bk, c3);
            c4 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[4]), bk, c4);
            c5 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[5]), bk, c5);
            c6 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[6]), bk, c6);
            c7 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[7]), bk, c7);
            c8 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[8]), bk, c8);
            c9 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[9]), bk, c9);
            c10 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[10]), bk, c10);
            c11 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[11]), bk, c11);
            c12 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[12]), bk, c12);
            c13 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[13]), bk, c13);
            c14 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[14]), bk, c14);
            c15 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[15]), bk, c15);
            a += TileRows;
            b += 16;
        }
        Store(c, c0, accumulate); Store(c + ldc, c1, accumulate); Store(c + 2 * ldc, c2, accumulate); Store(c + 3 * ldc, c3, accumulate);
        Store(c + 4 * ldc, c4, accumulate); Store(c + 5 * ldc, c5, accumulate); Store(c + 6 * ldc, c6, accumulate); Store(c + 7 * ldc, c7, accumulate);
        c += 8 * ldc;
        Store(c, c8, accumulate); Store(c + ldc, c9, accumulate); Store(c + 2 * ldc, c10, accumulate); Store(c + 3 * ldc, c11, accumulate);
        Store(c + 4 * ldc, c12, accumulate); Store(c + 5 * ldc, c13, accumulate); Store(c + 6 * ldc, c14, accumulate); Store(c + 7 * ldc, c15, accumulate);
    }

    /// <summary>Nine to sixteen rows of which not all, or not all sixteen columns, are stored: the whole tile into a spill buffer, then its valid part.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static void MultiplyPartial(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        float* tile = stackalloc float[TileRows * 16];
        MultiplyFull(a, b, kc, tile, 16, accumulate: false);
        StoreTile(tile, 16, c, ldc, accumulate, rows, columns);
    }

    /// <summary>Rows 0-7 of the tile, for row blocks of five to eight rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Multiply8(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (int k = 0; k < kc; k++)
        {
            var bk = Avx512F.LoadVector512(b);
            c0 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[0]), bk, c0);
            c1 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[1]), bk, c1);
            c2 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[2]), bk, c2);
            c3 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[3]), bk, c3);
            c4 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[4]), bk, c4);
            c5 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[5]), bk, c5);
            c6 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[6]), bk, c6);
            c7 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[7]), bk, c7);
            a += TileRows;
            b += 16;
        }
        float* tile = stackalloc float[8 * 16];
        Avx512F.Store(tile, c0); Avx512F.Store(tile + 16, c1); Avx512F.Store(tile + 32, c2); Avx512F.Store(tile + 48, c3);
        Avx512F.Store(tile + 64, c4); Avx512F.Store(tile + 80, c5); Avx512F.Store(tile + 96, c6); Avx512F.Store(tile + 112, c7);
        StoreTile(tile, 16, c, ldc, accumulate, rows, columns);
    }

    /// <summary>Rows 0-3 of the tile, for row blocks of one to four rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Multiply4(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
        for (int k = 0; k < kc; k++)
        {
            var bk = Avx512F.LoadVector512(b);
            c0 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[0]), bk, c0);
            c1 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[1]), bk, c1);
            c2 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[2]), bk, c2);
            c3 = Avx512F.FusedMultiplyAdd(Vector512.Create(a[3]), bk, c3);
            a += TileRows;
            b += 16;
        }
        float* tile = stackalloc float[4 * 16];
        Avx512F.Store(tile, c0); Avx512F.Store(tile + 16, c1); Avx512F.Store(tile + 32, c2); Avx512F.Store(tile + 48, c3);
        StoreTile(tile, 16, c, ldc, accumulate, rows, columns);
    }

    /// <summary>The 16 x 8 left half of the tile, in ymm registers: the same multiply-adds as the full tile's first eight columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MultiplyHalf(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        Vector256<float> c8 = default, c9 = default, c10 = default, c11 = default, c12 = default, c13 = default, c14 = default, c15 = default;
        for (int k = 0; k < kc; k++)
        {
            var bk = Avx.LoadVector256(b);
            c0 = Fma.MultiplyAdd(Vector256.Create(a[0]), bk, c0);
            c1 = Fma.MultiplyAdd(Vector256.Create(a[1]), bk, c1);
            c2 = Fma.MultiplyAdd(Vector256.Create(a[2]), bk, c2);
            c3 = Fma.MultiplyAdd(Vector256.Create(a[3]), bk, c3);
            c4 = Fma.MultiplyAdd(Vector256.Create(a[4]), bk, c4);
            c5 = Fma.MultiplyAdd(Vector256.Create(a[5]), bk, c5);
            c6 = Fma.MultiplyAdd(Vector256.Create(a[6]), bk, c6);
            c7 = Fma.MultiplyAdd(Vector256.Create(a[7]), bk, c7);
            c8 = Fma.MultiplyAdd(Vector256.Create(a[8]), bk, c8);
            c9 = Fma.MultiplyAdd(Vector256.Create(a[9]), bk, c9);
            c10 = Fma.MultiplyAdd(Vector256.Create(a[10]), bk, c10);
            c11 = Fma.MultiplyAdd(Vector256.Create(a[11]), bk, c11);
            c12 = Fma.MultiplyAdd(Vector256.Create(a[12]), bk, c12);
            c13 = Fma.MultiplyAdd(Vector256.Create(a[13]), bk, c13);
            c14 = Fma.MultiplyAdd(Vector256.Create(a[14]), bk, c14);
            c15 = Fma.MultiplyAdd(Vector256.Create(a[15]), bk, c15);
            a += TileRows;
            b += 16;
        }
        float* tile = stackalloc float[TileRows * 8];
        Avx.Store(tile, c0); Avx.Store(tile + 8, c1); Avx.Store(tile + 16, c2); Avx.Store(tile + 24, c3);
        Avx.Store(tile + 32, c4); Avx.Store(tile + 40, c5); Avx.Store(tile + 48, c6); Avx.Store(tile + 56, c7);
        Avx.Store(tile + 64, c8); Avx.Store(tile + 72, c9); Avx.Store(tile + 80, c10); Avx.Store(tile + 88, c11);
        Avx.Store(tile + 96, c12); Avx.Store(tile + 104, c13); Avx.Store(tile + 112, c14); Avx.Store(tile + 120, c15);
        StoreTile(tile, 8, c, ldc, accumulate, rows, columns);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> sum, bool accumulate)
    {
        if (accumulate) sum = Avx512F.Add(sum, Avx512F.LoadVector512(c));
        Avx512F.Store(c, sum);
    }

    /// <summary>The valid <paramref name="rows"/> x <paramref name="columns"/> of a tile spilled to memory (row stride <paramref name="width"/>) into C.</summary>
    private static void StoreTile(float* tile, int width, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < columns; j++)
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * width + j] : tile[r * width + j];
        }
    }
}

/// <summary>
/// Packs A for a kernel whose tile has <c>height</c> rows: per row block, K-major (<c>[k][row]</c>), zero rows past M.
/// Full blocks of a height that is a multiple of 4 (at least 8) are transposed eight rows by eight K values at a time in AVX
/// registers; the rest, and CPUs without AVX, take <see cref="PackScalar"/>, which gives the same bytes.
/// </summary>
internal static unsafe class FloatRowPacking
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Pack(in GemmA a, int row, int rows, int k0, int kc, float* packed, int height)
    {
        if (!Avx.IsSupported || rows != height || height < 8 || height % 4 != 0)
        {
            PackScalar(a, row, rows, k0, kc, packed, height);
            return;
        }
        float* source = (float*)a.Data + (long)row * a.Depth + k0;
        long stride = a.Depth;
        int k = 0;
        for (; k <= kc - 8; k += 8)
        {
            // Groups of eight rows; a last group of four overlaps the one before it and rewrites four of its values.
            for (int r = 0; r < height; r += 8)
            {
                int r0 = Math.Min(r, height - 8);
                Transpose8x8(source + r0 * stride + k, stride, packed + (long)k * height + r0, height);
            }
        }
        for (; k < kc; k++)
        {
            for (int r = 0; r < height; r++) packed[(long)k * height + r] = source[r * stride + k];
        }
    }

    /// <summary>
    /// Eight rows (<paramref name="stride"/> apart) of eight values each, stored transposed: value <c>k</c> of the eight rows
    /// as eight consecutive floats at <c>target + k * targetStride</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* source, long stride, float* target, int targetStride)
    {
        var r0 = Avx.LoadVector256(source);
        var r1 = Avx.LoadVector256(source + stride);
        var r2 = Avx.LoadVector256(source + 2 * stride);
        var r3 = Avx.LoadVector256(source + 3 * stride);
        var r4 = Avx.LoadVector256(source + 4 * stride);
        var r5 = Avx.LoadVector256(source + 5 * stride);
        var r6 = Avx.LoadVector256(source + 6 * stride);
        var r7 = Avx.LoadVector256(source + 7 * stride);
        var t0 = Avx.UnpackLow(r0, r1);  // a0 b0 a1 b1 | a4 b4 a5 b5
        var t1 = Avx.UnpackHigh(r0, r1); // a2 b2 a3 b3 | a6 b6 a7 b7
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); // a0 b0 c0 d0 | a4 b4 c4 d4
        var u1 = Avx.Shuffle(t0, t2, 0xEE); // a1 b1 c1 d1 | a5 b5 c5 d5
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); // e0 f0 g0 h0 | e4 f4 g4 h4
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(target, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(target + targetStride, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(target + 2 * targetStride, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(target + 3 * targetStride, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(target + 4 * targetStride, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(target + 5 * targetStride, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(target + 6 * targetStride, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(target + 7 * targetStride, Avx.Permute2x128(u3, u7, 0x31));
    }

    /// <summary>The scalar twin of <see cref="Pack"/>.</summary>
    public static void PackScalar(in GemmA a, int row, int rows, int k0, int kc, float* packed, int height)
    {
        float* source = (float*)a.Data;
        int depth = a.Depth;
        for (int r = 0; r < rows; r++)
        {
            float* src = source + (long)(row + r) * depth + k0;
            for (int k = 0; k < kc; k++) packed[(long)k * height + r] = src[k];
        }
        for (int r = rows; r < height; r++)
        {
            for (int k = 0; k < kc; k++) packed[(long)k * height + r] = 0f;
        }
    }
}
