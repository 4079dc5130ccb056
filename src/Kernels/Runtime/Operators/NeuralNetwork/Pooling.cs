using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>MaxPool: the largest element of each window (NaN ignored), and optionally its flat index (Indices, opset 8+).</summary>
[OnnxOperator("MaxPool", 1)]
internal sealed class MaxPool(WindowAttributes window, bool columnMajorIndices) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var window = WindowAttributes.Read(context);
        if (window.KernelShape is null) throw context.Unsupported("MaxPool needs kernel_shape");
        long storageOrder = context.Int("storage_order", 0);
        if (storageOrder is not (0 or 1)) throw context.Unsupported($"storage_order {storageOrder}");
        return new MaxPool(window, storageOrder == 1);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: Run<float>(call, x); break;
            case TensorElementType.Float64: Run<double>(call, x); break;
            case TensorElementType.Int8: Run<sbyte>(call, x); break;
            case TensorElementType.UInt8: Run<byte>(call, x); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: MaxPool of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    private void Run<T>(OperatorCall call, Tensor x) where T : unmanaged, INumber<T>
    {
        var g = Pool.Geometry(window, x, window.KernelShape!, call.Context.Node);
        int planes = x.Shape[0] * x.Shape[1];
        var shape = g.OutputShape(x.Shape[0], x.Shape[1]);
        var y = call.Output(0, x.ElementType, shape);
        Tensor? indices = call.OutputCount > 1 ? call.Output(1, TensorElementType.Int64, shape) : null;
        var xs = x.Buffer.Data as T[] ?? throw new InvalidOperationException();
        var ys = (T[])y.Buffer.Data;
        var ids = indices?.Buffer.Data as long[];
        bool columnMajor = columnMajorIndices;
        if (ids is null && xs is float[] xf && ys is float[] yf && Sse.IsSupported)
        {
            if (ByRows(g)) Pool.ForEachPlane(planes, g.OutputSize * g.KernelSize, call.Context.DegreeOfParallelism, plane => MaxPlaneFloatByRows(g, xf, plane, yf));
            else Pool.ForEachPlane(planes, g.OutputSize * g.KernelSize, call.Context.DegreeOfParallelism, plane => MaxPlaneFloat(g, xf, plane, yf));
            return;
        }
        Pool.ForEachPlane(planes, g.OutputSize * g.KernelSize, call.Context.DegreeOfParallelism, plane =>
            MaxPlane(g, xs, plane, ys, ids, columnMajor));
    }

    /// <summary>
    /// The float32 plane without indices, branch-free: <c>maxss(v, best)</c> returns best when v is NaN, so NaN is
    /// skipped as the reference does, without a data-dependent branch per element.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MaxPlaneFloat(WindowGeometry g, float[] x, int plane, float[] y)
    {
        int inH = g.Input[1], inW = g.Input[2], outD = g.Output[0], outH = g.Output[1], outW = g.Output[2];
        int sd = g.Stride[0], sh = g.Stride[1], sw = g.Stride[2], pd = g.PadBegin[0], ph = g.PadBegin[1], pw = g.PadBegin[2];
        int dd = g.Dilation[0], dh = g.Dilation[1], dw = g.Dilation[2];
        int[] firstD = g.FirstTap[0], endD = g.EndTap[0], firstH = g.FirstTap[1], endH = g.EndTap[1], firstW = g.FirstTap[2], endW = g.EndTap[2];
        var source = x.AsSpan(plane * g.InputSize, g.InputSize);
        int o = plane * g.OutputSize;
        for (int od = 0; od < outD; od++)
        {
            int fd = firstD[od], ed = endD[od], d0 = od * sd - pd;
            for (int oh = 0; oh < outH; oh++)
            {
                int fh = firstH[oh], eh = endH[oh], h0 = oh * sh - ph;
                for (int ow = 0; ow < outW; ow++, o++)
                {
                    int fw = firstW[ow], ew = endW[ow], w0 = ow * sw - pw;
                    if (Avx2.IsSupported && sw <= 2 && ow + 8 <= outW && fw == 0 && endW[ow + 7] == ew
                        && w0 + (ew - 1) * dw + 7 * sw + (sw - 1) < inW)
                    {
                        // Eight outputs whose windows are whole along the row (and whose 16-float stride-2 loads stay in it).
                        var best8 = Vector256.Create(float.NegativeInfinity);
                        for (int kd = fd; kd < ed; kd++)
                        {
                            int id = d0 + kd * dd;
                            for (int kh = fh; kh < eh; kh++)
                            {
                                int row = (id * inH + h0 + kh * dh) * inW + w0;
                                for (int kw = 0; kw < ew; kw++)
                                    best8 = Avx.Max(Taps(source, row + kw * dw, sw), best8); // maxps keeps best8 where the tap is NaN, as maxss does
                            }
                        }
                        best8.CopyTo(y.AsSpan(o, 8));
                        if (Vector256.EqualsAny(best8, Vector256.Create(float.NegativeInfinity)))
                        {
                            // -inf is also what a window of only NaN leaves: tell the two apart the slow way, rarely.
                            for (int j = 0; j < 8; j++)
                            {
                                if (float.IsNegativeInfinity(y[o + j]) && AllNaN(source, inH, inW, d0, h0, w0 + j * sw, fd, ed, fh, eh, 0, ew, dd, dh, dw)) y[o + j] = float.NaN;
                            }
                        }
                        ow += 7;
                        o += 7;
                        continue;
                    }
                    var best = Vector128.CreateScalarUnsafe(float.NegativeInfinity);
                    for (int kd = fd; kd < ed; kd++)
                    {
                        int id = d0 + kd * dd;
                        for (int kh = fh; kh < eh; kh++)
                        {
                            int row = (id * inH + h0 + kh * dh) * inW + w0;
                            for (int kw = fw; kw < ew; kw++) best = Sse.MaxScalar(Vector128.CreateScalarUnsafe(source[row + kw * dw]), best);
                        }
                    }
                    float result = best.ToScalar();
                    // -inf is also what a window of only NaN leaves: tell the two apart the slow way, rarely.
                    if (float.IsNegativeInfinity(result) && AllNaN(source, inH, inW, d0, h0, w0, fd, ed, fh, eh, fw, ew, dd, dh, dw)) result = float.NaN;
                    y[o] = result;
                }
            }
        }
    }

    /// <summary>2-D windows without dilation and with strides 1 or 2 along the row: <see cref="MaxPlaneFloatByRows"/>.</summary>
    private static bool ByRows(WindowGeometry g) =>
        Avx2.IsSupported && g.Input[0] == 1 && g.Kernel[0] == 1 && g.Dilation[1] == 1 && g.Dilation[2] == 1 && g.Stride[2] <= 2;

    /// <summary>
    /// The float32 plane without indices, separably: per output row, the maxima down the window's rows for every input
    /// column (a line with -inf either side), then the window's width along that line, eight outputs at a time. ResNet's
    /// 3 x 3 stride-2 pool takes about two vector maxima per output this way instead of nine gathered ones. NaN is skipped
    /// as in <see cref="MaxPlaneFloat"/> (each tap is the first operand of <c>maxps</c>); the maximum of the remaining
    /// values does not depend on the order they are taken in.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void MaxPlaneFloatByRows(WindowGeometry g, float[] x, int plane, float[] y)
    {
        int inH = g.Input[1], inW = g.Input[2], outH = g.Output[1], outW = g.Output[2];
        int sh = g.Stride[1], sw = g.Stride[2], ph = g.PadBegin[1], pw = g.PadBegin[2], kW = g.Kernel[2];
        int[] firstH = g.FirstTap[1], endH = g.EndTap[1], firstW = g.FirstTap[2], endW = g.EndTap[2];
        // Padded column p is input column p - pw; the last vector reads up to (outW - 1) x sw + kW + 15.
        int lineLength = Math.Max(pw + inW, (outW + 8) * sw + kW + 16);
        float[] buffer = System.Buffers.ArrayPool<float>.Shared.Rent(lineLength);
        var negativeInfinity = Vector256.Create(float.NegativeInfinity);
        try
        {
            fixed (float* line = buffer, source = &x[plane * g.InputSize], target = &y[plane * g.OutputSize])
            {
                new Span<float>(line, lineLength).Fill(float.NegativeInfinity);
                var sourceSpan = new ReadOnlySpan<float>(source, g.InputSize);
                float* columns = line + pw;
                for (int oh = 0; oh < outH; oh++)
                {
                    int fh = firstH[oh], eh = endH[oh], h0 = oh * sh - ph;
                    int iw = 0;
                    for (; iw + 8 <= inW; iw += 8)
                    {
                        var best = negativeInfinity;
                        for (int kh = fh; kh < eh; kh++) best = Avx.Max(Vector256.Load(source + (h0 + kh) * inW + iw), best);
                        Vector256.Store(best, columns + iw);
                    }
                    for (; iw < inW; iw++)
                    {
                        var best = Vector128.CreateScalarUnsafe(float.NegativeInfinity);
                        for (int kh = fh; kh < eh; kh++) best = Sse.MaxScalar(Vector128.CreateScalarUnsafe(source[(h0 + kh) * inW + iw]), best);
                        columns[iw] = best.ToScalar();
                    }
                    float* row = target + oh * outW;
                    for (int ow = 0; ow < outW; ow += 8)
                    {
                        var best = negativeInfinity;
                        for (int kw = 0; kw < kW; kw++)
                        {
                            float* tap = line + ow * sw + kw;
                            var taps = sw == 1 ? Vector256.Load(tap) : ConvolutionPanels.EvenLanes(Vector256.Load(tap), Vector256.Load(tap + 8));
                            best = Avx.Max(taps, best);
                        }
                        int lanes = Math.Min(8, outW - ow);
                        if (lanes == 8) Vector256.Store(best, row + ow);
                        else for (int j = 0; j < lanes; j++) row[ow + j] = best.GetElement(j);
                        if (!Vector256.EqualsAny(best, negativeInfinity)) continue;
                        // -inf is also what a window of only NaN leaves: tell the two apart the slow way, rarely.
                        for (int j = 0; j < lanes; j++)
                        {
                            int o = ow + j;
                            if (float.IsNegativeInfinity(row[o]) && AllNaN(sourceSpan, inH, inW, 0, h0, o * sw - pw, 0, 1, fh, eh, firstW[o], endW[o], 1, 1, 1)) row[o] = float.NaN;
                        }
                    }
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>Eight taps <c>source[start + j * stride]</c>, stride 1 or 2 (two loads, even lanes gathered).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Taps(ReadOnlySpan<float> source, int start, int stride)
    {
        if (stride == 1) return Vector256.Create(source.Slice(start, 8));
        return ConvolutionPanels.EvenLanes(Vector256.Create(source.Slice(start, 8)), Vector256.Create(source.Slice(start + 8, 8)));
    }

    private static bool AllNaN(ReadOnlySpan<float> source, int inH, int inW, int d0, int h0, int w0, int fd, int ed, int fh, int eh, int fw, int ew, int dd, int dh, int dw)
    {
        for (int kd = fd; kd < ed; kd++)
        {
            for (int kh = fh; kh < eh; kh++)
            {
                int row = ((d0 + kd * dd) * inH + h0 + kh * dh) * inW + w0;
                for (int kw = fw; kw < ew; kw++)
                {
                    if (!float.IsNaN(source[row + kw * dw])) return false;
                }
            }
        }
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MaxPlane<T>(WindowGeometry g, T[] x, int plane, T[] y, long[]? indices, bool columnMajor) where T : unmanaged, INumber<T>
    {
        int inH = g.Input[1], inW = g.Input[2], outD = g.Output[0], outH = g.Output[1], outW = g.Output[2];
        int sd = g.Stride[0], sh = g.Stride[1], sw = g.Stride[2], pd = g.PadBegin[0], ph = g.PadBegin[1], pw = g.PadBegin[2];
        int dd = g.Dilation[0], dh = g.Dilation[1], dw = g.Dilation[2];
        int[] firstD = g.FirstTap[0], endD = g.EndTap[0], firstH = g.FirstTap[1], endH = g.EndTap[1], firstW = g.FirstTap[2], endW = g.EndTap[2];
        var source = x.AsSpan(plane * g.InputSize, g.InputSize);
        int o = plane * g.OutputSize;
        for (int od = 0; od < outD; od++)
        {
            int fd = firstD[od], ed = endD[od], d0 = od * sd - pd;
            for (int oh = 0; oh < outH; oh++)
            {
                int fh = firstH[oh], eh = endH[oh], h0 = oh * sh - ph;
                for (int ow = 0; ow < outW; ow++, o++)
                {
                    int fw = firstW[ow], ew = endW[ow], w0 = ow * sw - pw;
                    T best = default;
                    int bestIndex = -1;
                    for (int kd = fd; kd < ed; kd++)
                    {
                        int id = d0 + kd * dd;
                        for (int kh = fh; kh < eh; kh++)
                        {
                            int row = (id * inH + h0 + kh * dh) * inW + w0;
                            for (int kw = fw; kw < ew; kw++)
                            {
                                int index = row + kw * dw;
                                T v = source[index];
                                // The first non-NaN element starts the maximum; later ones replace it only when larger.
                                if (bestIndex < 0 ? !T.IsNaN(v) : v > best)
                                {
                                    best = v;
                                    bestIndex = index;
                                }
                            }
                        }
                    }
                    if (bestIndex < 0)
                    {
                        // Every element was NaN: the maximum is NaN, at the window's first element.
                        best = T.CreateTruncating(double.NaN);
                        bestIndex = ((d0 + fd * dd) * inH + h0 + fh * dh) * inW + w0 + fw * dw;
                    }
                    y[o] = best;
                    if (indices is not null)
                    {
                        long spatial = bestIndex;
                        if (columnMajor)
                        {
                            int iw = bestIndex % inW, ih = bestIndex / inW % inH, id = bestIndex / (inW * inH);
                            spatial = ih + (long)iw * inH + (long)id * inH * inW;
                        }
                        indices[o] = (long)plane * g.InputSize + spatial;
                    }
                }
            }
        }
    }
}

/// <summary>AveragePool: the mean of each window, over the input elements only or (count_include_pad) over the explicit padding too.</summary>
[OnnxOperator("AveragePool", 1)]
internal sealed class AveragePool(WindowAttributes window, bool countIncludePad) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        var window = WindowAttributes.Read(context);
        if (window.KernelShape is null) throw context.Unsupported("AveragePool needs kernel_shape");
        return new AveragePool(window, context.Int("count_include_pad", 0) != 0);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: Run<float>(call, x); break;
            case TensorElementType.Float64: Run<double>(call, x); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: AveragePool of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    private void Run<T>(OperatorCall call, Tensor x) where T : unmanaged, IFloatingPoint<T>
    {
        var g = Pool.Geometry(window, x, window.KernelShape!, call.Context.Node);
        int planes = x.Shape[0] * x.Shape[1];
        var y = call.Output(0, x.ElementType, g.OutputShape(x.Shape[0], x.Shape[1]));
        var xs = (T[])x.Buffer.Data;
        var ys = (T[])y.Buffer.Data;
        bool includePad = countIncludePad;
        Pool.ForEachPlane(planes, g.OutputSize * g.KernelSize, call.Context.DegreeOfParallelism, plane =>
            AveragePlane(g, xs, plane, ys, includePad));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AveragePlane<T>(WindowGeometry g, T[] x, int plane, T[] y, bool includePad) where T : unmanaged, IFloatingPoint<T>
    {
        int inH = g.Input[1], inW = g.Input[2], outD = g.Output[0], outH = g.Output[1], outW = g.Output[2];
        int sd = g.Stride[0], sh = g.Stride[1], sw = g.Stride[2], pd = g.PadBegin[0], ph = g.PadBegin[1], pw = g.PadBegin[2];
        int dd = g.Dilation[0], dh = g.Dilation[1], dw = g.Dilation[2];
        int[] firstD = g.FirstTap[0], endD = g.EndTap[0], firstH = g.FirstTap[1], endH = g.EndTap[1], firstW = g.FirstTap[2], endW = g.EndTap[2];
        var source = x.AsSpan(plane * g.InputSize, g.InputSize);
        int o = plane * g.OutputSize;
        for (int od = 0; od < outD; od++)
        {
            int fd = firstD[od], ed = endD[od], d0 = od * sd - pd;
            int countD = includePad ? Pool.PaddedTaps(g, 0, od) : ed - fd;
            for (int oh = 0; oh < outH; oh++)
            {
                int fh = firstH[oh], eh = endH[oh], h0 = oh * sh - ph;
                int countH = includePad ? Pool.PaddedTaps(g, 1, oh) : eh - fh;
                for (int ow = 0; ow < outW; ow++, o++)
                {
                    int fw = firstW[ow], ew = endW[ow], w0 = ow * sw - pw;
                    int countW = includePad ? Pool.PaddedTaps(g, 2, ow) : ew - fw;
                    T sum = T.Zero;
                    for (int kd = fd; kd < ed; kd++)
                    {
                        int id = d0 + kd * dd;
                        for (int kh = fh; kh < eh; kh++)
                        {
                            int row = (id * inH + h0 + kh * dh) * inW + w0;
                            for (int kw = fw; kw < ew; kw++) sum += source[row + kw * dw];
                        }
                    }
                    int count = countD * countH * countW;
                    y[o] = count > 0 ? sum / T.CreateTruncating(count) : T.CreateTruncating(double.NaN);
                }
            }
        }
    }
}

/// <summary>What MaxPool and AveragePool share: shape checks, padded-tap counts, the loop over planes.</summary>
internal static class Pool
{
    public static WindowGeometry Geometry(WindowAttributes window, Tensor x, int[] kernel, string node)
    {
        if (x.Rank < 3) throw new InvalidOperationException($"{node}: input of shape {Tensor.Format(x.Shape)} has no spatial axes.");
        return window.Resolve(x.Shape[2..], kernel, node);
    }

    /// <summary>Taps along <paramref name="axis"/> inside the input or its explicit padding (not the ceil-mode overhang).</summary>
    public static int PaddedTaps(WindowGeometry g, int axis, int o)
    {
        int start = o * g.Stride[axis] - g.PadBegin[axis], d = g.Dilation[axis];
        int low = -g.PadBegin[axis], high = g.Input[axis] + g.PadEnd[axis];
        int count = 0;
        for (int t = 0; t < g.Kernel[axis]; t++)
        {
            int p = start + t * d;
            if (p >= low && p < high) count++;
        }
        return count;
    }

    /// <summary>Runs <paramref name="body"/> for every (image, channel) plane, in parallel when the work is large enough to pay.</summary>
    public static void ForEachPlane(int planes, int workPerPlane, int threads, Action<int> body)
    {
        if (threads > 1 && planes > 1 && (long)planes * workPerPlane >= 1 << 16)
            IntraOpThreads.For(planes, threads, body);
        else
            for (int p = 0; p < planes; p++) body(p);
    }
}
