using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// The int8 quad GEMM on AVX2 without VNNI for full-range weights (<see cref="PackedInt8Matrix.PackForMostlySmallActivations"/>).
/// <c>vpmaddubsw</c> adds two u8 x s8 products in 16 bits with saturation, so 8-bit weights would need 16-bit pairs,
/// half as many products per instruction. Instead A is split: <c>A = min(A, 127) + excess</c>. The quad kernel multiplies
/// the clamped part, for which no pair can saturate (127 x 128 x 2 &lt; 32768). The excess (A - 127 where A &gt; 127) is
/// rare after a ReLU: it is added row by row, one row of B per such value. When it is not rare, a second quad pass
/// multiplies it (excess in 0..128 cannot saturate either: 128 x -128 x 2 = -32768). Exact for any A.
/// </summary>
internal static unsafe class Int8SplitActivationGemm
{
    /// <summary>
    /// Above this fraction of A's values over 127 the second quad pass is taken instead of adding rows of B one by one.
    /// Estimated from instruction counts, not tuned: a row of B costs about eight times what one value of A costs in a quad
    /// pass, so the break-even is near 1/8; 1/32 leaves room for the scan. (ResNet18: under 0.2% after its first layer.)
    /// </summary>
    internal const double MaxSparseExcessFraction = 1.0 / 32;

    /// <summary>C (M x N, raw sums of <c>A x B</c> as stored, before zero points) for quads packed whole.</summary>
    public static void Run(GemmA a, byte* b, int columns, int* c, int threads)
    {
        int rows = a.RowCount, depth = a.Depth;
        GemmDriver<Int8QuadKernelAvx2PartOfA<ClampedA>, int, byte, int>.Run(a, b, columns, c, threads);
        long excess = CountExcess(a);
        if (excess == 0) return;
        if (excess <= MaxSparseExcessFraction * rows * depth)
        {
            nint data = (nint)a.Data, pb = (nint)b, pc = (nint)c;
            bool signed = a.Signed;
            ParallelRanges.For(rows, (long)depth + columns * 4L, threads, (start, end) =>
                AddExcessRows((byte*)data, signed, depth, (byte*)pb, columns, (int*)pc, start, end));
            return;
        }
        int[] second = ArrayPool<int>.Shared.Rent(rows * columns);
        try
        {
            fixed (int* pe = second)
            {
                GemmDriver<Int8QuadKernelAvx2PartOfA<ExcessOfA>, int, byte, int>.Run(a, b, columns, pe, threads);
                long count = (long)rows * columns, i = 0;
                for (; i <= count - 8; i += 8) Avx.Store(c + i, Avx2.Add(Avx.LoadVector256(c + i), Avx.LoadVector256(pe + i)));
                for (; i < count; i++) c[i] += pe[i];
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(second);
        }
    }

    /// <summary>How many of A's values are over 127 as the kernel sees them (int8 A flipped to uint8).</summary>
    internal static long CountExcess(in GemmA a)
    {
        byte* data = (byte*)a.Data;
        long length = (long)a.RowCount * a.Depth, count = 0, i = 0;
        if (Avx2.IsSupported)
        {
            for (; i <= length - 32; i += 32) count += BitOperations.PopCount((uint)Avx2.MoveMask(Avx.LoadVector256(data + i)));
        }
        for (; i < length; i++) count += data[i] >> 7;
        return a.Signed ? length - count : count;
    }

    /// <summary>
    /// For rows [start, end): C[m, :] += (A[m, k] - 127) x B[k, :] wherever A[m, k] &gt; 127, reading B's row k out of the
    /// quad panels (byte k % 4 of each column's int32). <paramref name="vector"/> = false is the scalar twin.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AddExcessRows(byte* a, bool signed, int depth, byte* b, int columns, int* c, int start, int end, bool vector = true)
    {
        const int width = PackedInt8Matrix.PanelWidth;
        int quads = (depth + 3) / 4, flip = signed ? 0x80 : 0;
        long panelBytes = (long)quads * 4 * width;
        int fullPanels = vector && Avx2.IsSupported ? columns / width : 0;
        for (int m = start; m < end; m++)
        {
            byte* row = a + (long)m * depth;
            int* cRow = c + (long)m * columns;
            int k = 0;
            if (vector && Avx2.IsSupported)
            {
                // Skip 32 values at a time by their top bits; only values over 127 (rare) go on.
                for (; k <= depth - 32; k += 32)
                {
                    uint mask = (uint)Avx2.MoveMask(Avx.LoadVector256(row + k)) ^ (signed ? uint.MaxValue : 0u);
                    for (; mask != 0; mask &= mask - 1)
                    {
                        int kk = k + BitOperations.TrailingZeroCount(mask);
                        AddExcessRow((row[kk] ^ flip) - 127, kk, b, columns, panelBytes, fullPanels, cRow);
                    }
                }
            }
            for (; k < depth; k++)
            {
                int value = row[k] ^ flip;
                if (value > 127) AddExcessRow(value - 127, k, b, columns, panelBytes, fullPanels, cRow);
            }
        }
    }

    /// <summary>C row += excess x row <paramref name="k"/> of B (full panels by vectors when <paramref name="fullPanels"/> &gt; 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddExcessRow(int excess, int k, byte* b, int columns, long panelBytes, int fullPanels, int* cRow)
    {
        const int width = PackedInt8Matrix.PanelWidth;
        int lane = k & 3;
        byte* step = b + (k >> 2) * 4 * width + lane;
        if (fullPanels > 0)
        {
            // Each column's quad is one int32: shift byte `lane` to the top, then arithmetically back down.
            var factor = Vector256.Create(excess);
            var shiftUp = Vector256.Create((uint)(24 - 8 * lane));
            for (int p = 0; p < fullPanels; p++)
            {
                int* quad = (int*)(step - lane + p * panelBytes);
                var low = Avx2.ShiftRightArithmetic(Avx2.ShiftLeftLogicalVariable(Avx.LoadVector256(quad), shiftUp), 24);
                var high = Avx2.ShiftRightArithmetic(Avx2.ShiftLeftLogicalVariable(Avx.LoadVector256(quad + 8), shiftUp), 24);
                int* target = cRow + p * width;
                Avx.Store(target, Avx2.Add(Avx.LoadVector256(target), Avx2.MultiplyLow(low, factor)));
                Avx.Store(target + 8, Avx2.Add(Avx.LoadVector256(target + 8), Avx2.MultiplyLow(high, factor)));
            }
        }
        for (int n = fullPanels * width; n < columns; n++)
        {
            int j = n % width;
            sbyte stored = *(sbyte*)(step + (n / width) * panelBytes + (j / 8) * 32 + (j % 8) * 4);
            cRow[n] += excess * stored;
        }
    }
}

/// <summary>Packs A as <see cref="Int8QuadPacking"/> does, then maps each byte with <typeparamref name="TPart"/>; multiplies as <see cref="Int8QuadKernelAvx2"/>.</summary>
internal readonly unsafe struct Int8QuadKernelAvx2PartOfA<TPart> : IGemmKernel<int, byte, int>
    where TPart : IPartOfA
{
    public static int Rows => Int8QuadPacking.Rows;
    public static int Columns => PackedInt8Matrix.PanelWidth;
    public static int KStep => 4;
    public static int KBlock => 1024;
    public static int MBlock => 96;
    public static int PanelStepLength => 4 * PackedInt8Matrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => Int8QuadPacking.RowBlockLength(kc);

    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed)
    {
        Int8QuadPacking.PackA(a, row, rows, k0, kc, packed);
        var bytes = (byte*)packed;
        int count = Int8QuadPacking.RowBlockLength(kc) * 4, i = 0;
        for (; i <= count - 32; i += 32) Avx.Store(bytes + i, TPart.Of(Avx.LoadVector256(bytes + i)));
        for (; i < count; i++) bytes[i] = TPart.Of(bytes[i]);
    }

    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns) =>
        Int8QuadKernelAvx2.Multiply(a, b, kc, c, ldc, accumulate, rows, columns);
}

/// <summary>Which part of A (as uint8) a split pass multiplies.</summary>
internal interface IPartOfA
{
    static abstract Vector256<byte> Of(Vector256<byte> a);

    static abstract byte Of(byte a);
}

/// <summary>min(A, 127) (<c>vpminub</c>).</summary>
internal readonly struct ClampedA : IPartOfA
{
    public static Vector256<byte> Of(Vector256<byte> a) => Avx2.Min(a, Vector256.Create((byte)127));

    public static byte Of(byte a) => Math.Min(a, (byte)127);
}

/// <summary>max(A - 127, 0) (<c>vpsubusb</c>).</summary>
internal readonly struct ExcessOfA : IPartOfA
{
    public static Vector256<byte> Of(Vector256<byte> a) => Avx2.SubtractSaturate(a, Vector256.Create((byte)127));

    public static byte Of(byte a) => (byte)Math.Max(a - 127, 0);
}
