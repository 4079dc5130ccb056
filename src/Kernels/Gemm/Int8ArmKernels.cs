using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// 6 x 16 quad micro-kernel on ARM64 with the dot-product extension (<c>SDOT</c>: four s8 x s8 products
/// added into s32, exact). A is flipped from uint8 to int8 by subtracting 128 (its bytes XOR 0x80); the
/// output stage adds <c>128 x sum(B)</c> back. The tile is done in two halves of 8 columns, twelve
/// accumulators each. Tested on x86 through <see cref="Int8QuadKernelPortable{TShift}"/> with <see cref="ShiftBy128"/>.
/// </summary>
internal readonly unsafe struct Int8QuadKernelArmDot : IGemmKernel<int, byte, int>
{
    public static int Rows => Int8QuadPacking.Rows;
    public static int Columns => PackedInt8Matrix.PanelWidth;
    public static int KStep => 4;
    public static int KBlock => 1024;
    public static int MBlock => 96;
    public static int PanelStepLength => 4 * PackedInt8Matrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => Int8QuadPacking.RowBlockLength(kc);
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, int* packed) => Int8QuadPacking.PackA(a, row, rows, k0, kc, packed);

    public static bool IsSupported => Dp.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns)
    {
        int* tile = stackalloc int[6 * 16];
        int quads = (kc + 3) / 4;
        var flip = Vector128.Create(unchecked((int)0x80808080));
        for (int half = 0; half < 2; half++)
        {
            Vector128<int> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
            Vector128<int> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
            int* ap = a;
            sbyte* bp = (sbyte*)b + half * 32;
            for (int q = 0; q < quads; q++)
            {
                var b0 = AdvSimd.LoadVector128(bp);
                var b1 = AdvSimd.LoadVector128(bp + 16);
                var ar = (Vector128.Create(ap[0]) ^ flip).AsSByte();
                c00 = Dp.DotProduct(c00, b0, ar); c01 = Dp.DotProduct(c01, b1, ar);
                ar = (Vector128.Create(ap[1]) ^ flip).AsSByte();
                c10 = Dp.DotProduct(c10, b0, ar); c11 = Dp.DotProduct(c11, b1, ar);
                ar = (Vector128.Create(ap[2]) ^ flip).AsSByte();
                c20 = Dp.DotProduct(c20, b0, ar); c21 = Dp.DotProduct(c21, b1, ar);
                ar = (Vector128.Create(ap[3]) ^ flip).AsSByte();
                c30 = Dp.DotProduct(c30, b0, ar); c31 = Dp.DotProduct(c31, b1, ar);
                ar = (Vector128.Create(ap[4]) ^ flip).AsSByte();
                c40 = Dp.DotProduct(c40, b0, ar); c41 = Dp.DotProduct(c41, b1, ar);
                ar = (Vector128.Create(ap[5]) ^ flip).AsSByte();
                c50 = Dp.DotProduct(c50, b0, ar); c51 = Dp.DotProduct(c51, b1, ar);
                ap += 6;
                bp += 64;
            }
            int* t = tile + half * 8;
            c00.Store(t); c01.Store(t + 4);
            c10.Store(t + 16); c11.Store(t + 20);
            c20.Store(t + 32); c21.Store(t + 36);
            c30.Store(t + 48); c31.Store(t + 52);
            c40.Store(t + 64); c41.Store(t + 68);
            c50.Store(t + 80); c51.Store(t + 84);
        }
        Int8Packing.StoreTile(tile, c, ldc, accumulate, rows, columns);
    }
}

/// <summary>
/// 6 x 16 micro-kernel for the Pairs16 layout on ARM64 without the dot-product extension: B widened to
/// 16 bits (<c>SXTL</c>/<c>UXTL</c>), each A pair multiplied into 32-bit products (<c>SMULL</c>, <c>SMULL2</c>)
/// and adjacent products added (<c>ADDP</c>), the equivalent of x86's <c>vpmaddwd</c>. Exact for every
/// 8-bit operand. Tested on x86 through <see cref="Int8KernelPortable{TWiden}"/>, the same arithmetic.
/// </summary>
internal readonly unsafe struct Int8PairKernelArm<TWiden> : IGemmKernel<int, byte, int>
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

    public static bool IsSupported => AdvSimd.Arm64.IsSupported;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(int* a, byte* b, int kc, int* c, int ldc, bool accumulate, int rows, int columns)
    {
        // Accumulators for 6 rows x 4 groups of 4 columns, kept in a small stack tile: the fallback favours brevity.
        Vector128<int>* acc = stackalloc Vector128<int>[24];
        for (int i = 0; i < 24; i++) acc[i] = default;
        int pairs = (kc + 1) / 2;
        Vector128<short>* widened = stackalloc Vector128<short>[4];
        for (int p = 0; p < pairs; p++)
        {
            for (int g = 0; g < 4; g++) widened[g] = TWiden.LoadArm(b + g * 8);
            for (int r = 0; r < 6; r++)
            {
                var ar = Vector128.Create(a[r]).AsInt16();
                for (int g = 0; g < 4; g++)
                {
                    var low = AdvSimd.MultiplyWideningLower(ar.GetLower(), widened[g].GetLower());
                    var high = AdvSimd.MultiplyWideningUpper(ar, widened[g]);
                    acc[r * 4 + g] = AdvSimd.Add(acc[r * 4 + g], AdvSimd.Arm64.AddPairwise(low, high));
                }
            }
            a += 6;
            b += 32;
        }
        int* tile = stackalloc int[6 * 16];
        for (int r = 0; r < 6; r++)
        {
            for (int g = 0; g < 4; g++) acc[r * 4 + g].Store(tile + r * 16 + g * 4);
        }
        Int8Packing.StoreTile(tile, c, ldc, accumulate, rows, columns);
    }
}
