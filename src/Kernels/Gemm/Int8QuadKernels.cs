using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// Packs 8-bit A for the quad kernels: per 6-row block and quad of K, one int32 per row holding four
/// bytes of A as uint8 (int8 A is flipped to uint8 by adding 128, its zero point with it); the missing
/// values of a last short quad are 0. The zero point is not subtracted here; the output stage applies it.
/// </summary>
internal static unsafe class Int8QuadPacking
{
    public const int Rows = 6;

    public static int RowBlockLength(int kc) => ((kc + 3) / 4) * Rows;

    /// <summary>
    /// Packs rows <c>[row, row + rows)</c>, K values <c>[k0, k0 + kc)</c>. Full six-row blocks of rows whose length is a
    /// whole number of quads are transposed eight quads at a time (<see cref="RowBlockTranspose"/>: scalar packing cost
    /// a tenth of the VNNI kernel's time); the rest, and CPUs without AVX, take <see cref="PackAScalar"/>, the same bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed)
    {
        int full = kc / 4;
        if (!Avx2.IsSupported || rows != Rows || a.Depth % 4 != 0 || full < 8)
        {
            PackAScalar(a, row, rows, k0, kc, packed);
            return;
        }
        uint* source = (uint*)((byte*)a.Data + (long)row * a.Depth + k0);
        RowBlockTranspose.SixRows(source, a.Depth / 4, full, (uint*)packed);
        if (a.Signed)
        {
            // int8 A becomes uint8 by flipping each byte's top bit (adding 128).
            var flip = Vector256.Create(unchecked((int)0x80808080));
            int count = full * Rows, i = 0;
            for (; i <= count - 8; i += 8) Avx.Store(packed + i, Avx2.Xor(Avx.LoadVector256(packed + i), flip));
            for (; i < count; i++) packed[i] ^= unchecked((int)0x80808080);
        }
        if (full * 4 < kc)
        {
            // The last, short quad: its missing bytes are 0.
            int flip = a.Signed ? 0x80 : 0;
            for (int r = 0; r < Rows; r++)
            {
                byte* src = (byte*)a.Data + (long)(row + r) * a.Depth + k0 + 4 * full;
                int last = 0;
                for (int t = 0; t < kc - 4 * full; t++) last |= (src[t] ^ flip) << (8 * t);
                packed[full * Rows + r] = last;
            }
        }
    }

    /// <summary>The scalar twin of <see cref="PackA"/>.</summary>
    public static void PackAScalar(in GemmA a, int row, int rows, int k0, int kc, int* packed)
    {
        int quads = (kc + 3) / 4;
        int depth = a.Depth;
        int flip = a.Signed ? 0x80 : 0;
        for (int r = 0; r < rows; r++)
        {
            byte* src = (byte*)a.Data + (long)(row + r) * depth + k0;
            int* destination = packed + r;
            int q = 0;
            for (; q < kc / 4; q++)
                destination[q * Rows] = *(int*)(src + 4 * q) ^ (flip * 0x01010101);
            if (q < quads)
            {
                int last = 0;
                for (int t = 0; t < kc - 4 * q; t++) last |= (src[4 * q + t] ^ flip) << (8 * t);
                destination[q * Rows] = last;
            }
        }
        for (int r = rows; r < Rows; r++)
        {
            for (int q = 0; q < quads; q++) packed[q * Rows + r] = 0;
        }
    }
}

/// <summary>
/// 6 x 16 quad micro-kernel on AVX2: per quad of K, two 32-byte loads of B, six broadcast A quads, and for
/// each of the twelve products <c>vpmaddubsw</c> (u8 x s8 pairs to s16), <c>vpmaddwd</c> by ones (to s32)
/// and <c>vpaddd</c>. Exact because the packer keeps every pair of B below saturation (the excess goes
/// to the sparse correction).
/// </summary>
internal readonly unsafe struct Int8QuadKernelAvx2 : IGemmKernel<int, byte, int>
{
    public static int Rows => Int8QuadPacking.Rows;
    public static int Columns => PackedInt8Matrix.PanelWidth;
    public static int KStep => 4;
    public static int KBlock => 1024;
    public static int MBlock => 96;
    public static int PanelStepLength => 4 * PackedInt8Matrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => Int8QuadPacking.RowBlockLength(kc);
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed) => Int8QuadPacking.PackA(a, row, rows, k0, kc, packed);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns)
    {
        var ones = Vector256.Create((short)1);
        Vector256<int> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<int> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        int quads = (kc + 3) / 4;
        for (int q = 0; q < quads; q++)
        {
            var b0 = Avx.LoadVector256((sbyte*)b);
            var b1 = Avx.LoadVector256((sbyte*)b + 32);
            var ap = Avx2.BroadcastScalarToVector256(a).AsByte();
            c00 = Avx2.Add(c00, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b0), ones));
            c01 = Avx2.Add(c01, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b1), ones));
            ap = Avx2.BroadcastScalarToVector256(a + 1).AsByte();
            c10 = Avx2.Add(c10, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b0), ones));
            c11 = Avx2.Add(c11, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b1), ones));
            ap = Avx2.BroadcastScalarToVector256(a + 2).AsByte();
            c20 = Avx2.Add(c20, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b0), ones));
            c21 = Avx2.Add(c21, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b1), ones));
            ap = Avx2.BroadcastScalarToVector256(a + 3).AsByte();
            c30 = Avx2.Add(c30, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b0), ones));
            c31 = Avx2.Add(c31, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b1), ones));
            ap = Avx2.BroadcastScalarToVector256(a + 4).AsByte();
            c40 = Avx2.Add(c40, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b0), ones));
            c41 = Avx2.Add(c41, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b1), ones));
            ap = Avx2.BroadcastScalarToVector256(a + 5).AsByte();
            c50 = Avx2.Add(c50, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b0), ones));
            c51 = Avx2.Add(c51, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(ap, b1), ones));
            a += 6;
            b += 64;
        }
        Int8QuadTile.Store(c, ldc, accumulate, rows, columns, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
    }
}

/// <summary>
/// The quad micro-kernel on AVX-VNNI (<c>vpdpbusd</c>: four u8 x s8 products added into s32 without
/// saturation). The packer stores B whole (no corrections) on such CPUs. (.NET 10 has no intrinsic for the EVEX,
/// AVX-512 form: CPUs with AVX-512 VNNI take <see cref="Jit.Int8VnniKernels"/>, assembled at run time, where they can.)
/// </summary>
internal readonly unsafe struct Int8QuadKernelVnni : IGemmKernel<int, byte, int>
{
    public static int Rows => Int8QuadPacking.Rows;
    public static int Columns => PackedInt8Matrix.PanelWidth;
    public static int KStep => 4;
    public static int KBlock => 1024;
    public static int MBlock => 96;
    public static int PanelStepLength => 4 * PackedInt8Matrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => Int8QuadPacking.RowBlockLength(kc);
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed) => Int8QuadPacking.PackA(a, row, rows, k0, kc, packed);

    public static bool IsSupported => AvxVnni.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns)
    {
        Vector256<int> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<int> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        int quads = (kc + 3) / 4;
        for (int q = 0; q < quads; q++)
        {
            var b0 = Avx.LoadVector256((sbyte*)b);
            var b1 = Avx.LoadVector256((sbyte*)b + 32);
            var ap = Avx2.BroadcastScalarToVector256(a).AsByte();
            c00 = Dot(c00, ap, b0); c01 = Dot(c01, ap, b1);
            ap = Avx2.BroadcastScalarToVector256(a + 1).AsByte();
            c10 = Dot(c10, ap, b0); c11 = Dot(c11, ap, b1);
            ap = Avx2.BroadcastScalarToVector256(a + 2).AsByte();
            c20 = Dot(c20, ap, b0); c21 = Dot(c21, ap, b1);
            ap = Avx2.BroadcastScalarToVector256(a + 3).AsByte();
            c30 = Dot(c30, ap, b0); c31 = Dot(c31, ap, b1);
            ap = Avx2.BroadcastScalarToVector256(a + 4).AsByte();
            c40 = Dot(c40, ap, b0); c41 = Dot(c41, ap, b1);
            ap = Avx2.BroadcastScalarToVector256(a + 5).AsByte();
            c50 = Dot(c50, ap, b0); c51 = Dot(c51, ap, b1);
            a += 6;
            b += 64;
        }
        Int8QuadTile.Store(c, ldc, accumulate, rows, columns, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dot(Vector256<int> accumulator, Vector256<byte> a, Vector256<sbyte> b) =>
        AvxVnni.MultiplyWideningAndAdd(accumulator, a, b);
}

/// <summary>
/// The scalar twin of the quad kernels: the same packing and tile, each quad's four u8 x s8 products added
/// exactly in 32 bits. With <typeparamref name="TShift"/> = <see cref="NoShift"/> it is what <c>vpdpbusd</c>
/// computes, and what <c>vpmaddubsw</c> computes on the pairs the packer made safe; with
/// <see cref="ShiftBy128"/> it subtracts 128 from A first, as the ARM dot-product kernel does (s8 x s8).
/// </summary>
internal readonly unsafe struct Int8QuadKernelPortable<TShift> : IGemmKernel<int, byte, int>
    where TShift : IAShift
{
    public static int Rows => Int8QuadPacking.Rows;
    public static int Columns => PackedInt8Matrix.PanelWidth;
    public static int KStep => 4;
    public static int KBlock => 1024;
    public static int MBlock => 96;
    public static int PanelStepLength => 4 * PackedInt8Matrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => Int8QuadPacking.RowBlockLength(kc);
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed) => Int8QuadPacking.PackA(a, row, rows, k0, kc, packed);

    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns)
    {
        int* tile = stackalloc int[6 * 16];
        new Span<int>(tile, 6 * 16).Clear();
        int quads = (kc + 3) / 4;
        int shift = TShift.Shift;
        for (int q = 0; q < quads; q++)
        {
            for (int r = 0; r < 6; r++)
            {
                byte* aq = (byte*)(a + q * 6 + r);
                for (int j = 0; j < 16; j++)
                {
                    sbyte* bq = (sbyte*)b + q * 64 + (j / 8) * 32 + (j % 8) * 4;
                    tile[r * 16 + j] += (aq[0] - shift) * bq[0] + (aq[1] - shift) * bq[1] + (aq[2] - shift) * bq[2] + (aq[3] - shift) * bq[3];
                }
            }
        }
        Int8Packing.StoreTile(tile, c, ldc, accumulate, rows, columns);
    }
}

/// <summary>What a quad kernel subtracts from the uint8 A values before multiplying (the output stage adds it back).</summary>
internal interface IAShift
{
    static abstract int Shift { get; }
}

internal readonly struct NoShift : IAShift
{
    public static int Shift => 0;
}

internal readonly struct ShiftBy128 : IAShift
{
    public static int Shift => 128;
}

internal static unsafe class Int8QuadTile
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(int* c, int ldc, bool accumulate, int rows, int columns,
        Vector256<int> c00, Vector256<int> c01, Vector256<int> c10, Vector256<int> c11, Vector256<int> c20, Vector256<int> c21,
        Vector256<int> c30, Vector256<int> c31, Vector256<int> c40, Vector256<int> c41, Vector256<int> c50, Vector256<int> c51)
    {
        if (rows == 6 && columns == 16)
        {
            Row(c, c00, c01, accumulate);
            Row(c + ldc, c10, c11, accumulate);
            Row(c + 2 * ldc, c20, c21, accumulate);
            Row(c + 3 * ldc, c30, c31, accumulate);
            Row(c + 4 * ldc, c40, c41, accumulate);
            Row(c + 5 * ldc, c50, c51, accumulate);
            return;
        }
        int* tile = stackalloc int[6 * 16];
        Avx.Store(tile, c00); Avx.Store(tile + 8, c01);
        Avx.Store(tile + 16, c10); Avx.Store(tile + 24, c11);
        Avx.Store(tile + 32, c20); Avx.Store(tile + 40, c21);
        Avx.Store(tile + 48, c30); Avx.Store(tile + 56, c31);
        Avx.Store(tile + 64, c40); Avx.Store(tile + 72, c41);
        Avx.Store(tile + 80, c50); Avx.Store(tile + 88, c51);
        Int8Packing.StoreTile(tile, c, ldc, accumulate, rows, columns);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row(int* c, Vector256<int> lo, Vector256<int> hi, bool accumulate)
    {
        if (accumulate)
        {
            lo = Avx2.Add(lo, Avx.LoadVector256(c));
            hi = Avx2.Add(hi, Avx.LoadVector256(c + 8));
        }
        Avx.Store(c, lo);
        Avx.Store(c + 8, hi);
    }
}
