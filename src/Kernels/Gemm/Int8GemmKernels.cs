using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// Packs 8-bit A for the 16-bit-pair kernels: per 6-row block, for each pair of K values, one int32
/// per row holding <c>(a[k] - zpA) | (a[k+1] - zpA) &lt;&lt; 16</c> (a missing odd K value is 0).
/// Subtracting the zero point here is free (A is widened anyway) and makes every product exact:
/// <c>|a - zpA| &lt;= 255</c> and <c>|b| &lt;= 255</c> fit <c>vpmaddwd</c>'s signed 16-bit operands.
/// </summary>
internal static unsafe class Int8Packing
{
    public const int Rows = 6;

    public static int RowBlockLength(int kc) => ((kc + 1) / 2) * Rows;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed)
    {
        int pairs = (kc + 1) / 2;
        int depth = a.Depth;
        int zero = a.ZeroPoint;
        for (int r = 0; r < rows; r++)
        {
            long offset = (long)(row + r) * depth + k0;
            int* destination = packed + r;
            if (a.Signed)
            {
                sbyte* src = (sbyte*)a.Data + offset;
                for (int p = 0; p < pairs; p++)
                {
                    int lo = src[2 * p] - zero;
                    int hi = 2 * p + 1 < kc ? src[2 * p + 1] - zero : 0;
                    destination[p * Rows] = (lo & 0xFFFF) | (hi << 16);
                }
            }
            else
            {
                byte* src = (byte*)a.Data + offset;
                for (int p = 0; p < pairs; p++)
                {
                    int lo = src[2 * p] - zero;
                    int hi = 2 * p + 1 < kc ? src[2 * p + 1] - zero : 0;
                    destination[p * Rows] = (lo & 0xFFFF) | (hi << 16);
                }
            }
        }
        for (int r = rows; r < Rows; r++)
        {
            for (int p = 0; p < pairs; p++) packed[p * Rows + r] = 0;
        }
    }

    /// <summary>Writes the 6 x 16 tile, or its top-left part, adding to C when accumulating.</summary>
    public static void StoreTile(int* tile, int* c, int ldc, bool accumulate, int rows, int columns)
    {
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < columns; j++)
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * 16 + j] : tile[r * 16 + j];
        }
    }
}

/// <summary>
/// 6 x 16 int32 micro-kernel on AVX2 for signed B: per pair of K values, two sign-extending loads of B
/// (<c>vpmovsxbw</c>), six broadcast A pairs, twelve <c>vpmaddwd</c> + <c>vpaddd</c>. Exact for every
/// 8-bit operand: each 16-bit product is at most 255 x 255 and the pair sum cannot reach 2^31.
/// </summary>
internal readonly unsafe struct Int8KernelAvx2Signed : IGemmKernel<int, byte, int>
{
    public static int Rows => Int8Packing.Rows;
    public static int Columns => PackedInt8Matrix.PanelWidth;
    public static int KStep => 2;
    public static int KBlock => 1024;
    public static int MBlock => 96;
    public static int PanelStepLength => 2 * PackedInt8Matrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => Int8Packing.RowBlockLength(kc);
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed) => Int8Packing.PackA(a, row, rows, k0, kc, packed);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns) =>
        Int8KernelAvx2.Multiply<SignExtend>(a, b, kc, c, ldc, accumulate, rows, columns);
}

/// <summary>The AVX2 kernel for unsigned B (<c>vpmovzxbw</c>); otherwise as <see cref="Int8KernelAvx2Signed"/>.</summary>
internal readonly unsafe struct Int8KernelAvx2Unsigned : IGemmKernel<int, byte, int>
{
    public static int Rows => Int8Packing.Rows;
    public static int Columns => PackedInt8Matrix.PanelWidth;
    public static int KStep => 2;
    public static int KBlock => 1024;
    public static int MBlock => 96;
    public static int PanelStepLength => 2 * PackedInt8Matrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => Int8Packing.RowBlockLength(kc);
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed) => Int8Packing.PackA(a, row, rows, k0, kc, packed);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns) =>
        Int8KernelAvx2.Multiply<ZeroExtend>(a, b, kc, c, ldc, accumulate, rows, columns);
}

/// <summary>How a B byte widens to 16 bits.</summary>
internal interface IWidenB
{
    /// <summary>16 bytes widened (x86 AVX2).</summary>
    static abstract unsafe Vector256<short> Load(byte* b);

    /// <summary>8 bytes widened (ARM64 AdvSimd).</summary>
    static abstract unsafe Vector128<short> LoadArm(byte* b);

    static abstract int Widen(byte b);
}

internal readonly struct SignExtend : IWidenB
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<short> Load(byte* b) => Avx2.ConvertToVector256Int16((sbyte*)b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector128<short> LoadArm(byte* b) => System.Runtime.Intrinsics.Arm.AdvSimd.SignExtendWideningLower(Vector64.Load((sbyte*)b));

    public static int Widen(byte b) => (sbyte)b;
}

internal readonly struct ZeroExtend : IWidenB
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<short> Load(byte* b) => Avx2.ConvertToVector256Int16(b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector128<short> LoadArm(byte* b) => System.Runtime.Intrinsics.Arm.AdvSimd.ZeroExtendWideningLower(Vector64.Load(b)).AsInt16();

    public static int Widen(byte b) => b;
}

internal static unsafe class Int8KernelAvx2
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Multiply<TWiden>(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns)
        where TWiden : IWidenB
    {
        Vector256<int> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<int> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        int pairs = (kc + 1) / 2;
        for (int p = 0; p < pairs; p++)
        {
            var b0 = TWiden.Load(b);
            var b1 = TWiden.Load(b + 16);
            var ap = Avx2.BroadcastScalarToVector256(a).AsInt16();
            c00 = Avx2.Add(c00, Avx2.MultiplyAddAdjacent(ap, b0));
            c01 = Avx2.Add(c01, Avx2.MultiplyAddAdjacent(ap, b1));
            ap = Avx2.BroadcastScalarToVector256(a + 1).AsInt16();
            c10 = Avx2.Add(c10, Avx2.MultiplyAddAdjacent(ap, b0));
            c11 = Avx2.Add(c11, Avx2.MultiplyAddAdjacent(ap, b1));
            ap = Avx2.BroadcastScalarToVector256(a + 2).AsInt16();
            c20 = Avx2.Add(c20, Avx2.MultiplyAddAdjacent(ap, b0));
            c21 = Avx2.Add(c21, Avx2.MultiplyAddAdjacent(ap, b1));
            ap = Avx2.BroadcastScalarToVector256(a + 3).AsInt16();
            c30 = Avx2.Add(c30, Avx2.MultiplyAddAdjacent(ap, b0));
            c31 = Avx2.Add(c31, Avx2.MultiplyAddAdjacent(ap, b1));
            ap = Avx2.BroadcastScalarToVector256(a + 4).AsInt16();
            c40 = Avx2.Add(c40, Avx2.MultiplyAddAdjacent(ap, b0));
            c41 = Avx2.Add(c41, Avx2.MultiplyAddAdjacent(ap, b1));
            ap = Avx2.BroadcastScalarToVector256(a + 5).AsInt16();
            c50 = Avx2.Add(c50, Avx2.MultiplyAddAdjacent(ap, b0));
            c51 = Avx2.Add(c51, Avx2.MultiplyAddAdjacent(ap, b1));
            a += 6;
            b += 32;
        }

        if (rows == 6 && columns == 16)
        {
            Store(c, c00, c01, accumulate);
            Store(c + ldc, c10, c11, accumulate);
            Store(c + 2 * ldc, c20, c21, accumulate);
            Store(c + 3 * ldc, c30, c31, accumulate);
            Store(c + 4 * ldc, c40, c41, accumulate);
            Store(c + 5 * ldc, c50, c51, accumulate);
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
    private static void Store(int* c, Vector256<int> lo, Vector256<int> hi, bool accumulate)
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

/// <summary>The scalar twin of the AVX2 kernels: same packing, same tile, plain integer arithmetic.</summary>
internal readonly unsafe struct Int8KernelPortable<TWiden> : IGemmKernel<int, byte, int>
    where TWiden : IWidenB
{
    public static int Rows => Int8Packing.Rows;
    public static int Columns => PackedInt8Matrix.PanelWidth;
    public static int KStep => 2;
    public static int KBlock => 1024;
    public static int MBlock => 96;
    public static int PanelStepLength => 2 * PackedInt8Matrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => Int8Packing.RowBlockLength(kc);
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed) => Int8Packing.PackA(a, row, rows, k0, kc, packed);

    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns)
    {
        int* tile = stackalloc int[6 * 16];
        new Span<int>(tile, 6 * 16).Clear();
        int pairs = (kc + 1) / 2;
        for (int p = 0; p < pairs; p++)
        {
            for (int r = 0; r < 6; r++)
            {
                int pair = a[p * 6 + r];
                int lo = (short)pair, hi = pair >> 16;
                for (int j = 0; j < 16; j++)
                {
                    byte* column = b + p * 32 + (j / 8) * 16 + (j % 8) * 2;
                    tile[r * 16 + j] += lo * TWiden.Widen(column[0]) + hi * TWiden.Widen(column[1]);
                }
            }
        }
        Int8Packing.StoreTile(tile, c, ldc, accumulate, rows, columns);
    }
}
