using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// Resize (opset 10+): nearest, linear and cubic interpolation (with antialias, exclude_outside, every
/// coordinate_transformation_mode, axes and keep_aspect_ratio_policy), from scales or sizes. Interpolation is
/// separable, so it runs one axis at a time, each output line a weighted sum of a few input lines.
/// </summary>
[OnnxOperator("Resize", 10)]
internal sealed class Resize(ResizeAxis.Settings settings, int[]? axes, string aspectPolicy, float extrapolation, bool scalesOnly) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        string mode = context.String("mode", "nearest");
        var kind = mode switch
        {
            "nearest" => ResizeMode.Nearest,
            "linear" or "bilinear" or "trilinear" => ResizeMode.Linear,
            "cubic" or "bicubic" => ResizeMode.Cubic,
            _ => throw context.Unsupported($"mode '{mode}'"),
        };
        // Opset 10 had no coordinate attributes: it computed x / scale, taking the floor for nearest.
        bool opset10 = context.Opset < 11;
        string coordinates = opset10 ? "asymmetric" : context.String("coordinate_transformation_mode", "half_pixel");
        if (coordinates is not ("half_pixel" or "half_pixel_symmetric" or "pytorch_half_pixel" or "align_corners" or "asymmetric" or "tf_crop_and_resize"))
            throw context.Unsupported($"coordinate_transformation_mode '{coordinates}'");
        string nearest = opset10 ? "floor" : context.String("nearest_mode", "round_prefer_floor");
        if (nearest is not ("round_prefer_floor" or "round_prefer_ceil" or "floor" or "ceil"))
            throw context.Unsupported($"nearest_mode '{nearest}'");
        bool antialias = context.Int("antialias", 0) != 0;
        if (antialias && kind == ResizeMode.Nearest) throw context.Unsupported("antialias with mode nearest");
        string policy = context.String("keep_aspect_ratio_policy", "stretch");
        if (policy is not ("stretch" or "not_larger" or "not_smaller")) throw context.Unsupported($"keep_aspect_ratio_policy '{policy}'");
        int[]? axes = context.Ints("axes") is { Length: > 0 } a ? a.Select(v => checked((int)v)).ToArray() : null;
        var settings = new ResizeAxis.Settings(kind, coordinates, nearest, context.Float("cubic_coeff_a", -0.75f),
            context.Int("exclude_outside", 0) != 0, antialias);
        return new Resize(settings, axes, policy, context.Float("extrapolation_value", 0f), opset10);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32: Interpolate<float>(call, x); break;
            case TensorElementType.Float64: Interpolate<double>(call, x); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            case TensorElementType.Int8 when settings.Mode == ResizeMode.Nearest: Nearest<sbyte>(call, x); break;
            case TensorElementType.UInt8 when settings.Mode == ResizeMode.Nearest: Nearest<byte>(call, x); break;
            case TensorElementType.Int32 when settings.Mode == ResizeMode.Nearest: Nearest<int>(call, x); break;
            case TensorElementType.Int64 when settings.Mode == ResizeMode.Nearest: Nearest<long>(call, x); break;
            default: throw new NotSupportedException($"{call.Context.Node}: Resize ({settings.Mode}) of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    /// <summary>Per axis: the output size, and the table of input points (null where the axis is unchanged).</summary>
    private (int[] Shape, ResizeAxis?[] Tables) Plan(OperatorCall call, Tensor x)
    {
        string node = call.Context.Node;
        int rank = x.Rank;
        var resized = axes?.Select(a => a < 0 ? a + rank : a).ToArray() ?? Enumerable.Range(0, rank).ToArray();
        if (resized.Any(a => a < 0 || a >= rank) || resized.Distinct().Count() != resized.Length)
            throw new InvalidOperationException($"{node}: axes {string.Join(", ", axes!)} for rank {rank}.");
        var scalesTensor = scalesOnly ? call.OptionalInput(1) : call.OptionalInput(2);
        var sizesTensor = scalesOnly ? null : call.OptionalInput(3);
        double[]? scalesGiven = scalesTensor is { Length: > 0 } ? Doubles(scalesTensor) : null;
        long[]? sizesGiven = sizesTensor is { Length: > 0 } ? sizesTensor.ToArray<long>() : null;
        if ((scalesGiven is null) == (sizesGiven is null))
            throw new InvalidOperationException($"{node}: Resize needs exactly one of scales and sizes.");
        int count = (scalesGiven?.Length ?? sizesGiven!.Length);
        if (count != resized.Length) throw new InvalidOperationException($"{node}: {count} scales or sizes for {resized.Length} axes.");

        var scales = Enumerable.Repeat(1.0, rank).ToArray();
        var shape = x.ShapeArray.ToArray();
        if (scalesGiven is not null)
        {
            for (int i = 0; i < resized.Length; i++)
            {
                if (scalesGiven[i] <= 0) throw new InvalidOperationException($"{node}: scale {scalesGiven[i]} is not positive.");
                scales[resized[i]] = scalesGiven[i];
                shape[resized[i]] = (int)(scalesGiven[i] * x.Shape[resized[i]]);
            }
        }
        else
        {
            for (int i = 0; i < resized.Length; i++)
            {
                scales[resized[i]] = (double)sizesGiven![i] / x.Shape[resized[i]];
                shape[resized[i]] = checked((int)sizesGiven[i]);
            }
            if (aspectPolicy != "stretch")
            {
                var chosen = resized.Select(a => scales[a]);
                double scale = aspectPolicy == "not_larger" ? chosen.Min() : chosen.Max();
                foreach (int a in resized)
                {
                    scales[a] = scale;
                    shape[a] = (int)(scale * x.Shape[a] + 0.5);
                }
            }
        }

        double[]? roi = null;
        if (settings.CoordinateMode == "tf_crop_and_resize")
        {
            var given = scalesOnly ? null : call.OptionalInput(1);
            if (given is not { Length: > 0 }) throw new InvalidOperationException($"{node}: tf_crop_and_resize needs roi.");
            var values = Doubles(given);
            if (values.Length != 2 * resized.Length) throw new InvalidOperationException($"{node}: roi has {values.Length} values for {resized.Length} axes.");
            roi = new double[2 * rank];
            for (int a = 0; a < rank; a++) roi[rank + a] = 1;
            for (int i = 0; i < resized.Length; i++)
            {
                roi[resized[i]] = values[i];
                roi[rank + resized[i]] = values[resized.Length + i];
            }
        }

        var tables = new ResizeAxis?[rank];
        for (int a = 0; a < rank; a++)
        {
            if (shape[a] == x.Shape[a] && scales[a] == 1 && roi is null) continue;
            var table = ResizeAxis.Build(settings, x.Shape[a], shape[a], scales[a], roi?[a] ?? 0, roi?[rank + a] ?? 1);
            if (!table.IsIdentity(x.Shape[a])) tables[a] = table;
        }
        return (shape, tables);
    }

    private static double[] Doubles(Tensor t) => t.ElementType switch
    {
        TensorElementType.Float32 => t.ToArray<float>().Select(v => (double)v).ToArray(),
        TensorElementType.Float64 => t.ToArray<double>(),
        TensorElementType.Float16 => t.ToArray<Half>().Select(v => (double)v).ToArray(),
        _ => throw new NotSupportedException($"Resize scales or roi of {t.ElementType.DisplayName()} are not supported."),
    };

    private void Interpolate<T>(OperatorCall call, Tensor x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (shape, tables) = Plan(call, x);
        var y = call.Output(0, x.ElementType, shape);
        T fill = T.CreateTruncating(extrapolation);
        Passes<T>(x, shape, tables, y.AsSpan<T>(), (source, table, outer, size, inner, target) =>
        {
            int n = table.Taps;
            for (int o = 0; o < outer; o++)
            {
                var from = source.Slice(o * size * inner, size * inner);
                for (int j = 0; j < table.Output; j++)
                {
                    var line = target.Slice((o * table.Output + j) * inner, inner);
                    if (table.Extrapolate[j])
                    {
                        line.Fill(fill);
                        continue;
                    }
                    bool first = true;
                    for (int t = 0; t < n; t++)
                    {
                        double w = table.Weights[j * n + t];
                        if (w == 0) continue;
                        var input = from.Slice(table.Indices[j * n + t] * inner, inner);
                        if (first) TensorPrimitives.Multiply(input, T.CreateTruncating(w), line);
                        else TensorPrimitives.MultiplyAdd(input, T.CreateTruncating(w), line, line);
                        first = false;
                    }
                    if (first) line.Clear();
                }
            }
        });
    }

    private void Nearest<T>(OperatorCall call, Tensor x) where T : unmanaged, INumber<T>
    {
        var (shape, tables) = Plan(call, x);
        var y = call.Output(0, x.ElementType, shape);
        T fill = T.CreateTruncating(extrapolation);
        Passes<T>(x, shape, tables, y.AsSpan<T>(), (source, table, outer, size, inner, target) =>
        {
            int n = table.Taps;
            for (int o = 0; o < outer; o++)
            {
                for (int j = 0; j < table.Output; j++)
                {
                    var line = target.Slice((o * table.Output + j) * inner, inner);
                    int t = 0;
                    while (t < n - 1 && table.Weights[j * n + t] == 0) t++;
                    if (table.Extrapolate[j]) line.Fill(fill);
                    else source.Slice((o * size + table.Indices[j * n + t]) * inner, inner).CopyTo(line);
                }
            }
        });
    }

    private delegate void AxisPass<T>(ReadOnlySpan<T> source, ResizeAxis table, int outer, int size, int inner, Span<T> target);

    /// <summary>Applies each axis's table in turn, through pooled intermediates, the last pass into <paramref name="output"/>.</summary>
    private static void Passes<T>(Tensor x, int[] shape, ResizeAxis?[] tables, Span<T> output, AxisPass<T> pass) where T : unmanaged
    {
        var current = x.ShapeArray.ToArray();
        int last = Array.FindLastIndex(tables, t => t is not null);
        if (last < 0)
        {
            x.AsSpan<T>().CopyTo(output);
            return;
        }
        T[]? held = null;
        ReadOnlySpan<T> source = x.AsSpan<T>();
        try
        {
            for (int a = 0; a <= last; a++)
            {
                if (tables[a] is not { } table) continue;
                int outer = Tensor.CountElements(current.AsSpan(0, a)), inner = Tensor.CountElements(current.AsSpan(a + 1));
                int size = current[a];
                current[a] = shape[a];
                T[]? next = a == last ? null : ArrayPool<T>.Shared.Rent(outer * shape[a] * inner);
                var target = next is null ? output : next.AsSpan(0, outer * shape[a] * inner);
                pass(source, table, outer, size, inner, target);
                if (held is not null) ArrayPool<T>.Shared.Return(held);
                held = next;
                source = target;
            }
        }
        finally
        {
            if (held is not null) ArrayPool<T>.Shared.Return(held);
        }
    }
}
