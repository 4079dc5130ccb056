using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// DequantizeLinear -> MaxPool -> QuantizeLinear on the 8-bit values (see <see cref="Planning.QdqElementwiseFusion"/>):
/// inputs <c>x, x_scale, x_zero_point, y_scale, y_zero_point</c>, MaxPool's attributes and <c>output_dtype</c>.
/// The window maximum is taken on the stored values (int8 compared signed), then mapped through the table
/// <c>QuantizeLinear(DequantizeLinear(v))</c> computed as ONNX defines both; the table is skipped when it is the identity.
/// </summary>
[OnnxOperator("QuantizedMaxPool", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class QuantizedMaxPool(WindowAttributes window, TensorElementType? inputType, TensorElementType outputType, byte[] unsignedTable, byte[] signedTable)
    : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var window = WindowAttributes.Read(context);
        if (window.KernelShape is null) throw context.Unsupported("MaxPool needs kernel_shape");
        var x = ElementwiseQdq.Read(context, 1);
        var y = ElementwiseQdq.Read(context, 3);
        var outputType = y.Type ?? ElementwiseQdq.OutputType(context);
        return new QuantizedMaxPool(window, x.Type, outputType,
            ElementwiseQdq.Requantization(x.Scale, x.ZeroPoint, signed: false, y.Scale, y.ZeroPoint, outputType),
            ElementwiseQdq.Requantization(x.Scale, x.ZeroPoint, signed: true, y.Scale, y.ZeroPoint, outputType));
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        string node = call.Context.Node;
        ElementwiseQdq.CheckInput(x, inputType, node);
        bool signed = x.ElementType == TensorElementType.Int8;
        byte[] table = signed ? signedTable : unsignedTable;
        // int8 values compare as unsigned once their sign bit is flipped; the table is indexed by the stored byte.
        byte flip = signed ? (byte)0x80 : (byte)0;
        bool identity = x.ElementType == outputType && ElementwiseQdq.IsIdentity(table);
        var g = Pool.Geometry(window, x, window.KernelShape!, node);
        var y = call.Output(0, outputType, g.OutputShape(x.Shape[0], x.Shape[1]));
        Pool.ForEachPlane(x.Shape[0] * x.Shape[1], g.OutputSize * g.KernelSize, call.Context.DegreeOfParallelism, plane =>
        {
            var source = QuantizationInputs.Bytes(x).Slice(plane * g.InputSize, g.InputSize);
            var target = QuantizationInputs.Bytes(y).Slice(plane * g.OutputSize, g.OutputSize);
            MaxPlane(g, source, flip, target);
            if (!identity)
            {
                for (int i = 0; i < target.Length; i++) target[i] = table[target[i]];
            }
        });
    }

    /// <summary>
    /// One plane in two steps: for each output row, the maximum over the window's rows (depth and height taps inside the
    /// input) of every input column, vectorized; then, per output pixel, the maximum of those over the width taps.
    /// Values are compared as keys <c>v ^ flip</c>, which order int8 values as unsigned bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void MaxPlane(WindowGeometry g, ReadOnlySpan<byte> source, byte flip, Span<byte> target, bool vectorRows = true)
    {
        int inH = g.Input[1], inW = g.Input[2], outD = g.Output[0], outH = g.Output[1], outW = g.Output[2];
        // Along the row, windows without dilation and strides 1 or 2 take 32 outputs at a time from a line with key 0
        // (below every value) either side; otherwise each output's taps one by one.
        bool byVectors = vectorRows && Avx2.IsSupported && g.Dilation[2] == 1 && g.Stride[2] <= 2;
        int pw = byVectors ? g.PadBegin[2] : 0;
        int lineLength = byVectors ? Math.Max(pw + inW, (outW + 32) * g.Stride[2] + g.Kernel[2] + 32) : inW;
        Span<byte> line = lineLength <= 2048 ? stackalloc byte[lineLength] : new byte[lineLength];
        line.Clear();
        var columns = line.Slice(pw, inW);
        var flips = Vector256.Create(flip);
        int o = 0;
        for (int od = 0; od < outD; od++)
        {
            int fd = g.FirstTap[0][od], ed = g.EndTap[0][od], d0 = od * g.Stride[0] - g.PadBegin[0];
            for (int oh = 0; oh < outH; oh++)
            {
                int fh = g.FirstTap[1][oh], eh = g.EndTap[1][oh], h0 = oh * g.Stride[1] - g.PadBegin[1];
                columns.Clear(); // key 0: below every value
                for (int kd = fd; kd < ed; kd++)
                {
                    int id = d0 + kd * g.Dilation[0];
                    for (int kh = fh; kh < eh; kh++)
                    {
                        var row = source.Slice((id * inH + h0 + kh * g.Dilation[1]) * inW, inW);
                        int w = 0;
                        if (Vector256.IsHardwareAccelerated)
                        {
                            ref byte r = ref MemoryMarshal.GetReference(row);
                            ref byte c = ref MemoryMarshal.GetReference(columns);
                            for (; w + 32 <= inW; w += 32)
                                Vector256.Max(Vector256.LoadUnsafe(ref c, (nuint)w), Vector256.LoadUnsafe(ref r, (nuint)w) ^ flips).StoreUnsafe(ref c, (nuint)w);
                        }
                        for (; w < inW; w++) columns[w] = Math.Max(columns[w], (byte)(row[w] ^ flip));
                    }
                }
                if (byVectors)
                {
                    MaxAlongRow(line, g.Stride[2], g.Kernel[2], outW, flip, target.Slice(o, outW));
                    o += outW;
                    continue;
                }
                for (int ow = 0; ow < outW; ow++, o++)
                {
                    int fw = g.FirstTap[2][ow], ew = g.EndTap[2][ow], w0 = ow * g.Stride[2] - g.PadBegin[2];
                    byte best = 0;
                    for (int kw = fw; kw < ew; kw++) best = Math.Max(best, columns[w0 + kw * g.Dilation[2]]);
                    target[o] = (byte)(best ^ flip);
                }
            }
        }
    }

    /// <summary>Output j = max over kw of line[j x stride + kw] (keys), flipped back; 32 outputs per step, stride 1 or 2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void MaxAlongRow(Span<byte> line, int stride, int kernel, int outW, byte flip, Span<byte> target)
    {
        var flips = Vector256.Create(flip);
        var low = Vector256.Create((ushort)0x00ff);
        fixed (byte* pl = line, pt = target)
        {
            for (int ow = 0; ow < outW; ow += 32)
            {
                var best = Vector256<byte>.Zero;
                for (int kw = 0; kw < kernel; kw++)
                {
                    byte* tap = pl + ow * stride + kw;
                    Vector256<byte> taps;
                    if (stride == 1)
                    {
                        taps = Avx.LoadVector256(tap);
                    }
                    else
                    {
                        // The even bytes of 64: each 16-bit lane's low byte, packed, then the 64-bit quarters back in order.
                        var first = Avx2.And(Avx.LoadVector256(tap).AsUInt16(), low).AsInt16();
                        var second = Avx2.And(Avx.LoadVector256(tap + 32).AsUInt16(), low).AsInt16();
                        taps = Avx2.Permute4x64(Avx2.PackUnsignedSaturate(first, second).AsUInt64(), 0b11_01_10_00).AsByte();
                    }
                    best = Avx2.Max(best, taps);
                }
                best ^= flips;
                int lanes = Math.Min(32, outW - ow);
                if (lanes == 32) Avx.Store(pt + ow, best);
                else for (int j = 0; j < lanes; j++) pt[ow + j] = best.GetElement(j);
            }
        }
    }
}
