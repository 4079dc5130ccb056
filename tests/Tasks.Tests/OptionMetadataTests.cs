using Quantize.Core.Quantization;

namespace Quantize.Build.Tasks.Tests;

/// <summary>Item metadata onto the quantizer's options: through Core's one option table, with the issue's alias names.</summary>
public class OptionMetadataTests
{
    private static QuantizationOptions Apply(params (string Name, string Value)[] metadata) =>
        OptionMetadata.Apply(new QuantizationOptions(), metadata.Select(m => KeyValuePair.Create(m.Name, m.Value)));

    [Fact]
    public void Every_option_is_found_by_its_metadata_name_in_any_case()
    {
        foreach (var spec in OptionSpec.All)
        {
            Assert.Same(spec, OptionMetadata.Find(spec.Metadata));
            Assert.Same(spec, OptionMetadata.Find(spec.Metadata.ToUpperInvariant()));
        }
    }

    [Fact]
    public void Metadata_sets_the_options_and_placement_metadata_is_ignored()
    {
        var options = Apply(("Mode", "weights"), ("PerChannel", "false"), ("WeightType", "uint8"), ("MinimumSize", "16"),
            ("CalibrationMethod", "entropy"), ("Link", "models/x.onnx"), ("CopyToOutputDirectory", "Always"), ("Whatever", "1"));
        Assert.Equal(QuantizationMode.Weights, options.Mode);
        Assert.False(options.PerChannel);
        Assert.Equal(Kernels.Models.TensorElementType.UInt8, options.WeightType);
        Assert.Equal(16, options.MinimumSize);
        Assert.Equal(CalibrationMethod.Entropy, options.CalibrationMethod);
    }

    [Fact]
    public void Issue_names_are_aliases_of_the_option_table_names()
    {
        var options = Apply(("Mode", "int4"), ("BlockSize", "64"), ("AccuracyTarget", "0.97"), ("Exclude", "head*;pool"));
        Assert.Equal(64, options.Int4BlockSize);
        Assert.Equal(0.97, options.MinimumCosine);
        Assert.Equal(["head*", "pool"], options.ExcludeNodes);
        Assert.Same(OptionMetadata.Find("Int4BlockSize"), OptionMetadata.Find("BlockSize"));
    }

    [Fact]
    public void Empty_values_keep_the_default()
    {
        var options = Apply(("Mode", ""), ("PerChannel", " "));
        Assert.Equal(new QuantizationOptions().Mode, options.Mode);
        Assert.True(options.PerChannel);
    }

    [Fact]
    public void A_bad_value_names_the_metadata()
    {
        var e = Assert.Throws<ArgumentException>(() => Apply(("BlockSize", "lots")));
        Assert.StartsWith("BlockSize: ", e.Message);
        Assert.Contains("'lots'", e.Message);
    }

    [Fact]
    public void An_option_set_by_its_name_and_an_alias_is_an_error()
    {
        var e = Assert.Throws<ArgumentException>(() => Apply(("Int4BlockSize", "32"), ("BlockSize", "64")));
        Assert.Contains("BlockSize", e.Message);
        Assert.Contains("Int4BlockSize", e.Message);
    }

    [Fact]
    public void Options_are_validated_together()
    {
        var e = Assert.Throws<ArgumentException>(() => Apply(("Mode", "dynamic"), ("ActivationType", "int8")));
        Assert.Contains("uint8", e.Message);
    }
}
